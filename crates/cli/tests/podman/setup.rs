//! `setup`, `uninstall` and `prepare`: containers.conf edits undone byte for byte, sudo,
//! downgrades, concurrent runs, atomic bundles.

use super::harness::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn setup_and_uninstall_leave_containers_conf_byte_identical() {
    let Some(_) = env() else { return };
    let h = Home::new(Who::User);
    let original =
        "# my podman settings\n[containers]\nlog_size_max = 1000 # keep\n\n[engine] # the engine\n# nothing else\n";
    h.sh(&format!("mkdir -p xdg/containers && printf '%s' '{original}' > xdg/containers/containers.conf"));
    let env_prefix = format!("XDG_CONFIG_HOME={0}/xdg XDG_DATA_HOME={0}/data TEROK_ROOT={0}/terok", h.dir.display());
    let e = env().unwrap_or_else(|| unreachable!());
    let shield = e.bin.join("terok-shield").display().to_string();
    let setup = h.sh(&format!("{env_prefix} {shield} setup && cat xdg/containers/containers.conf"));
    assert!(
        setup
            .stdout
            .contains(&format!("[engine] # the engine\nhooks_dir = [\"{}/terok/shield/hooks\"]\n", h.dir.display())),
        "{}",
        setup.stdout
    );
    h.sh(&format!("{env_prefix} {shield} uninstall"));
    let after = std::fs::read(h.dir.join("xdg/containers/containers.conf")).unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&after), original, "containers.conf is not byte-identical");
    assert!(!h.dir.join("terok/shield/hooks/terok-shield-createRuntime.json").exists());
    assert!(!h.dir.join("terok/shield/setup.json").exists());
    // Idempotent.
    h.sh(&format!("{env_prefix} {shield} uninstall"));
}

/// The sudo rule `setup --root` needs, for the test user and for as long as this test runs:
/// `install` and `rm` as root (which make the user root while the rule exists, so it is
/// never left behind: tests/env/setup.sh writes none, and this guard removes it, also when
/// the test fails).
struct SudoRule(PathBuf);

impl SudoRule {
    fn grant(user: &str) -> SudoRule {
        let path = PathBuf::from(format!("/etc/sudoers.d/terok-shield-test-{}", std::process::id()));
        std::fs::write(&path, format!("{user} ALL=(root) NOPASSWD: /usr/bin/install, /usr/bin/rm\n"))
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440)).unwrap_or_else(|err| panic!("{err}"));
        SudoRule(path)
    }
}

impl Drop for SudoRule {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn setup_root_through_sudo() {
    let Some(e) = env() else { return };
    let _sudo = SudoRule::grant(&e.user);
    let h = Home::new(Who::User);
    let system =
        tempfile::Builder::new().prefix("tsh-system-").tempdir_in("/tmp").unwrap_or_else(|err| panic!("{err}"));
    let hooks = system.path().join("hooks.d");
    let shield = e.bin.join("terok-shield").display().to_string();
    // Its own config home: the test user's real containers.conf sets hooks_dir (rootless
    // tests), which would hide a system-wide install (check-environment says so).
    let env_prefix = format!(
        "TEROK_SHIELD_SYSTEM_HOOKS_DIR={} XDG_DATA_HOME={1}/data XDG_CONFIG_HOME={1}/xdg TEROK_ROOT={1}/terok",
        hooks.display(),
        h.dir.display()
    );
    let out = h.sh(&format!("{env_prefix} {shield} setup --root"));
    assert!(out.stdout.contains("(through sudo)"), "{}", out.stdout);
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(hooks.join("terok-shield-createRuntime.json")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(meta.uid(), 0, "installed by root");
    assert!(hooks.join("terok-shield-hook").exists() && hooks.join("terok-shield.receipt").exists());
    let status = h.sh(&format!("{env_prefix} {shield} check-environment"));
    assert!(status.stdout.contains("hooks=global\nhealth=ok"), "{}", status.stdout);
    h.sh(&format!("{env_prefix} {shield} uninstall --root"));
    assert!(!hooks.join("terok-shield-createRuntime.json").exists());
    // A user sudo refuses: a clear error, nothing installed.
    std::fs::set_permissions(system.path(), std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|err| panic!("{err}"));
    for d in ["nobody", "nobody-data"] {
        std::fs::create_dir(system.path().join(d)).unwrap_or_else(|err| panic!("{err}"));
        std::fs::set_permissions(system.path().join(d), std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|err| panic!("{err}"));
    }
    let refused = run(Command::new("runuser")
        .args([
            "-u",
            "nobody",
            "--",
            "env",
            "-i",
            "HOME=/nonexistent",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ])
        .arg(format!("TEROK_SHIELD_SYSTEM_HOOKS_DIR={}", hooks.display()))
        .arg(format!("TEROK_ROOT={}/nobody", system.path().display()))
        .arg(format!("XDG_DATA_HOME={}/nobody-data", system.path().display()))
        .args([&shield, "setup", "--root"]));
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.starts_with("Error: sudo refused to "), "{}", refused.stderr);
    assert!(!hooks.join("terok-shield-createRuntime.json").exists());
}

#[test]
fn prepare_is_atomic_and_prints_the_flags() {
    let Some(_) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    // A failing prepare of a new container leaves no bundle.
    let out = h.shield(&["prepare", "fresh", "--profiles", "lab,nope"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Error: Profile not found: 'nope'\n"));
    assert!(!h.state_dir("fresh").exists(), "a failed prepare left a bundle");
    let leftovers: Vec<_> = std::fs::read_dir(h.dir.join("state/containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temporary dirs left: {leftovers:?}");

    let out = h.shield(&["prepare", "web", "--profiles", "lab", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    let sd = std::fs::canonicalize(h.state_dir("web")).unwrap_or_else(|e| panic!("{e}")).display().to_string();
    assert_eq!(flags[..2], ["--volume".to_string(), format!("{sd}/resolv.conf:/etc/resolv.conf:ro,Z")]);
    for a in [
        "terok.shield.profiles=lab",
        "terok.shield.name=web",
        &format!("terok.shield.state_dir={sd}"),
        "terok.shield.version=18",
        "terok.shield.audit_enabled=true",
    ] {
        assert!(flags.windows(2).any(|w| w[0] == "--annotation" && w[1] == a), "{a} missing in {flags:?}");
    }
    assert_eq!(
        flags[flags.len() - 6..],
        ["--cap-drop", "NET_ADMIN", "--cap-drop", "NET_RAW", "--name", "web"].map(String::from)
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&sd).map(|m| m.mode() & 0o777).unwrap_or(0), 0o700);
    assert_eq!(std::fs::metadata(format!("{sd}/policy")).map(|m| m.mode() & 0o777).unwrap_or(0), 0o700);

    // A failing prepare of an existing container leaves its bundle as it was.
    std::fs::write(format!("{sd}/policy/live"), format!("+{UNLISTED_V4}\n")).unwrap_or_else(|e| panic!("{e}"));
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&sd)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| {
                        (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let before = snapshot();
    h.profile("broken", "+1.2.3\n");
    let out = h.shield(&["prepare", "web", "--profiles", "broken"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("line 1: Invalid IP/CIDR: '1.2.3'"), "{}", out.stderr);
    assert_eq!(snapshot(), before, "a failed prepare changed the bundle");
    // A successful re-prepare keeps the live overlay.
    let out = h.shield(&["prepare", "web", "--profiles", "lab"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(format!("{sd}/policy/live")).unwrap_or_default(), format!("+{UNLISTED_V4}\n"));
    let shell = h.shield(&["prepare", "web", "--profiles", "lab"]).stdout;
    assert!(
        shell.starts_with(&format!(
            "--volume {sd}/resolv.conf:/etc/resolv.conf:ro,Z --annotation terok.shield.profiles=lab "
        )),
        "{shell}"
    );
}

#[test]
fn setup_refuses_downgrades_missing_tools_and_concurrent_runs() {
    let Some(e) = env() else { return };
    let h = Home::new(Who::User);
    let shield = e.bin.join("terok-shield").display().to_string();
    let d = h.dir.display().to_string();
    let env_prefix = format!("XDG_CONFIG_HOME={d}/xdg XDG_DATA_HOME={d}/data TEROK_ROOT={d}/terok");
    h.sh(&format!("{env_prefix} {shield} setup"));

    // A receipt from a newer version: setup refuses, status says why.
    h.sh("sed -i 's/\"version\": \"[^\"]*\"/\"version\": \"99.0.0\"/' terok/shield/setup.json");
    let out = run(&mut h.cmd("sh", &["-c", &format!("{env_prefix} {shield} setup")]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("Error: terok-shield 99.0.0 installed these hooks")
            && out.stderr.trim_end().ends_with("Downgrades are not supported."),
        "{}",
        out.stderr
    );
    let status = h.sh(&format!("{env_prefix} {shield} check-environment"));
    assert!(
        status.stdout.contains("health=setup-needed") && status.stdout.contains("newer version 99.0.0"),
        "{}",
        status.stdout
    );
    let prep = run(&mut h.cmd("sh", &["-c", &format!("{env_prefix} {shield} prepare web")]));
    assert_eq!(prep.code, 1);
    assert!(
        prep.stderr.contains("terok-shield/receipt: Setup receipt is from the newer version 99.0.0")
            && prep.stderr.contains("Downgrades are not supported."),
        "{}",
        prep.stderr
    );
    h.sh("rm terok/shield/setup.json");

    // Host tools missing from PATH.
    let out = run(&mut h.cmd("sh", &["-c", &format!("{env_prefix} PATH=/nonexistent {shield} setup")]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Host tool 'podman' must be executable on PATH.") && out.stderr.contains("Host tool 'nft'"),
        "{}",
        out.stderr
    );

    // Another setup holds the lock.
    let out = run(&mut h.cmd(
        "sh",
        &["-c", &format!("mkdir -p data/terok && flock data/terok/setup.lock sh -c '{env_prefix} {shield} setup'")],
    ));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(out.stderr, "Error: Another setup operation is already running. Retry after it finishes.\n");
}
