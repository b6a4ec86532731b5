//! `setup` and `uninstall` (hooks.md §2): the hook binary, the four descriptors, the
//! containers.conf registration and the receipt, under the global setup lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::containers_conf::{self, Edit};
use super::descriptors::{self, DESCRIPTORS};
use super::receipt::{self, BinaryId, ConfEdit, Inputs, Receipt, SYSTEM_RECEIPT};
use super::SetupError;
use crate::error::{Error, Result};
use crate::exec::{Cmd, ExecError};
use crate::fsutil::write_atomic;
use crate::helper::HELPER_BINARY as HOOK_BINARY;
use crate::paths::{self, Env};
use crate::tools;

/// Where the hooks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `<ns dir>/hooks`, registered in the user's containers.conf (the default).
    Namespace,
    /// podman's per-user hooks.d, `~/.local/share/containers/oci/hooks.d`, registered too.
    UserHooksD,
    /// The system-wide hooks dir podman scans by default (through sudo when not root).
    System,
}

/// The resolved install: directories, receipt location, registration, sudo.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    pub hooks_dir: PathBuf,
    pub receipt: PathBuf,
    pub conf: Option<PathBuf>,
    pub sudo: bool,
}

/// Real root installs system-wide; anyone else into their namespace dir unless told.
pub fn plan(env: &Env, requested: Option<Target>) -> Result<Plan> {
    let target = requested.unwrap_or(if env.real_root { Target::System } else { Target::Namespace });
    let ns = paths::namespace_dir(env)?;
    Ok(match target {
        Target::Namespace => Plan {
            target,
            hooks_dir: receipt::hooks_dir(&ns),
            receipt: receipt::receipt_path(&ns),
            conf: Some(containers_conf::user_conf_path(env)?),
            sudo: false,
        },
        Target::UserHooksD => Plan {
            target,
            hooks_dir: env.xdg_data_home()?.join("containers/oci/hooks.d"),
            receipt: receipt::receipt_path(&ns),
            conf: Some(containers_conf::user_conf_path(env)?),
            sudo: false,
        },
        Target::System => {
            let dir = receipt::system_hooks_dir(env);
            Plan { target, receipt: dir.join(SYSTEM_RECEIPT), hooks_dir: dir, conf: None, sudo: !env.real_root }
        }
    })
}

/// Hold the global setup lock (`<data base>/setup.lock`) for the life of the guard.
pub(crate) fn lock(env: &Env) -> Result<std::fs::File> {
    use std::os::unix::fs::DirBuilderExt;
    let base = paths::data_base(env)?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&base).map_err(|e| Error::io(&base, e))?;
    let path = base.join("setup.lock");
    let file = crate::fsutil::open_lock_file(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SetupError::Busy.into()),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(path, e)),
    }
}

/// Install `source` (the helper binary, [`crate::helper::HELPER_BINARY`]) and its
/// descriptors. Returns the hooks dir.
pub fn install(env: &Env, plan: &Plan, source: &Path) -> Result<PathBuf> {
    let _guard = lock(env)?;
    preflight(env, plan)?;
    if !tools::is_executable(source) {
        return Err(SetupError::NoHookBinary(source.to_path_buf(), "not an executable file".into()).into());
    }
    let path_env = descriptors::absolute_path_entries(env.get("PATH"));
    let (sha256, size) = receipt::sha256_file(source).map_err(|e| Error::io(source, e))?;
    let binary = BinaryId { path: plan.hooks_dir.join(HOOK_BINARY), sha256, size };
    let files: Vec<(String, String)> = DESCRIPTORS
        .iter()
        .map(|(f, prog, stage)| (f.to_string(), descriptors::render(&plan.hooks_dir, prog, stage, &path_env)))
        .collect();
    if plan.sudo {
        return install_with_sudo(plan, source, binary, path_env, &files);
    }
    remove_quietly(&plan.receipt);
    mkdir(&plan.hooks_dir, 0o755)?;
    let bytes = std::fs::read(source).map_err(|e| Error::io(source, e))?;
    write_atomic(&binary.path, &bytes, 0o755)?;
    for (file, text) in &files {
        write_atomic(&plan.hooks_dir.join(file), text.as_bytes(), 0o644)?;
    }
    let containers_conf = match &plan.conf {
        Some(conf) => Some(ConfEdit {
            path: conf.clone(),
            edit: containers_conf::register(conf, &plan.hooks_dir, env.home().ok().as_deref())?,
        }),
        None => None,
    };
    let receipt = Receipt {
        inputs: Inputs { containers_conf, hook_binary: binary, hooks: plan.hooks_dir.clone(), path: path_env },
        owner: "terok-shield".into(),
        version: crate::VERSION.into(),
    };
    verify_installed(&receipt)?;
    if let Some(parent) = plan.receipt.parent() {
        mkdir(parent, 0o700)?;
    }
    write_atomic(&plan.receipt, receipt.to_text().as_bytes(), 0o644)?;
    Ok(plan.hooks_dir.clone())
}

fn preflight(env: &Env, plan: &Plan) -> Result<()> {
    if let Ok(Some(r)) = receipt::read_receipt(&plan.receipt) {
        if receipt::version_tuple(&r.version) > receipt::version_tuple(crate::VERSION) {
            return Err(SetupError::Downgrade { installed: r.version, running: crate::VERSION.into() }.into());
        }
    }
    let missing: Vec<String> = ["podman", "nft"]
        .iter()
        .filter(|t| tools::find_in(t, env.get("PATH")).is_none())
        .map(|t| format!("Host tool '{t}' must be executable on PATH."))
        .collect();
    if !missing.is_empty() {
        return Err(SetupError::MissingTools(missing).into());
    }
    Ok(())
}

/// The files on disk match what the receipt certifies.
fn verify_installed(r: &Receipt) -> Result<()> {
    let (sum, _) =
        receipt::sha256_file(&r.inputs.hook_binary.path).map_err(|e| Error::io(&r.inputs.hook_binary.path, e))?;
    if sum != r.inputs.hook_binary.sha256 {
        return Err(SetupError::Verification("the installed hook binary differs from the source".into()).into());
    }
    for (file, prog, stage) in DESCRIPTORS {
        let want = descriptors::render(&r.inputs.hooks, prog, stage, &r.inputs.path);
        if std::fs::read_to_string(r.inputs.hooks.join(file)).ok().as_deref() != Some(want.as_str()) {
            return Err(SetupError::Verification(format!("{file} does not hold what was written")).into());
        }
    }
    Ok(())
}

fn sudo() -> Result<PathBuf> {
    tools::find("sudo").ok_or_else(|| SetupError::NoSudo.into())
}

fn sudo_run(sudo: &Path, args: &[&str]) -> Result<()> {
    use std::io::IsTerminal;
    let mut cmd = Cmd::new(sudo, Duration::from_secs(120));
    if !std::io::stdin().is_terminal() {
        cmd = cmd.arg("-n");
    }
    cmd.args(args.iter().copied()).run_ok().map(|_| ()).map_err(|e| match e {
        ExecError::Failed { stderr, .. } => SetupError::SudoRefused { action: args.join(" "), stderr }.into(),
        other => other.into(),
    })
}

fn install_with_sudo(
    plan: &Plan,
    source: &Path,
    binary: BinaryId,
    path_env: String,
    files: &[(String, String)],
) -> Result<PathBuf> {
    let sudo = sudo()?;
    let stage = tempfile::tempdir().map_err(|e| Error::io("temporary dir", e))?;
    let receipt = Receipt {
        inputs: Inputs { containers_conf: None, hook_binary: binary, hooks: plan.hooks_dir.clone(), path: path_env },
        owner: "terok-shield".into(),
        version: crate::VERSION.into(),
    };
    for (file, text) in files {
        std::fs::write(stage.path().join(file), text).map_err(|e| Error::io(stage.path().join(file), e))?;
    }
    std::fs::write(stage.path().join(SYSTEM_RECEIPT), receipt.to_text()).map_err(|e| Error::io(stage.path(), e))?;
    let dir = plan.hooks_dir.display().to_string();
    let s = |p: &Path| p.display().to_string();
    sudo_run(&sudo, &["rm", "-f", &s(&plan.receipt)])?;
    sudo_run(&sudo, &["install", "-d", "-m", "0755", &dir])?;
    sudo_run(&sudo, &["install", "-m", "0755", &s(source), &s(&plan.hooks_dir.join(HOOK_BINARY))])?;
    for (file, _) in files {
        sudo_run(&sudo, &["install", "-m", "0644", &s(&stage.path().join(file)), &s(&plan.hooks_dir.join(file))])?;
    }
    verify_installed(&receipt)?;
    sudo_run(&sudo, &["install", "-m", "0644", &s(&stage.path().join(SYSTEM_RECEIPT)), &s(&plan.receipt)])?;
    Ok(plan.hooks_dir.clone())
}

/// Remove exactly what setup wrote; idempotent. Returns notes for the operator (a
/// containers.conf edit that was changed since and so left alone).
pub fn uninstall(env: &Env, plan: &Plan) -> Result<Vec<String>> {
    let _guard = lock(env)?;
    let mut notes = Vec::new();
    let edit = receipt::read_receipt(&plan.receipt).ok().flatten().and_then(|r| r.inputs.containers_conf);
    let mut files: Vec<PathBuf> = DESCRIPTORS.iter().map(|(f, _, _)| plan.hooks_dir.join(f)).collect();
    files.push(plan.hooks_dir.join(HOOK_BINARY));
    files.push(plan.receipt.clone());
    if plan.sudo {
        let sudo = sudo()?;
        let mut args = vec!["rm".to_string(), "-f".to_string()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        sudo_run(&sudo, &args.iter().map(String::as_str).collect::<Vec<_>>())?;
        return Ok(notes);
    }
    let mut errors = Vec::new();
    for f in &files {
        if let Err(e) = std::fs::remove_file(f) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("{}: {e}", f.display()));
            }
        }
    }
    let _ = std::fs::remove_dir(&plan.hooks_dir);
    if let Some(ConfEdit { path, edit }) = edit {
        if edit != Edit::None {
            match containers_conf::unregister(&path, &edit) {
                Ok(true) => {}
                Ok(false) => notes.push(format!(
                    "{} changed since setup; left it as it is (remove {} from hooks_dir by hand)",
                    path.display(),
                    plan.hooks_dir.display()
                )),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    if errors.is_empty() {
        Ok(notes)
    } else {
        Err(SetupError::Incomplete(errors).into())
    }
}

fn mkdir(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir).map_err(|e| Error::io(dir, e))
}

fn remove_quietly(p: &Path) {
    let _ = std::fs::remove_file(p);
}
