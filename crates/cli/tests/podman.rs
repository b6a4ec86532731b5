//! Real podman, rootful and rootless, against the test hosts of `tests/env/setup.sh`
//! (namespace `tshield-hosts`): what a shielded container reaches, restart behaviour,
//! fail-closed starts proven by a marker file, and setup/uninstall.
//!
//! Rootful tests run as root with `CONTAINERS_CONF` from `/etc/terok-shield-test/env`;
//! rootless ones run as the test user through `runuser`, with the binaries copied to a
//! world-readable directory.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

const ALLOWED_V4: &str = "198.51.100.10";
const ALLOWED_V6: &str = "2001:db8:100::10";
const UNLISTED_V4: &str = "198.51.100.11";
const UNLISTED_V6: &str = "2001:db8:100::11";
const PRIVATE_V4: &str = "10.222.222.10";
/// A link-local test host: the hard-deny floor, which only DISENGAGED lifts.
const LINK_LOCAL_V4: &str = "169.254.77.10";

/// The test environment, or `None` (with the reason printed) when it is not set up.
struct Env {
    vars: Vec<(String, String)>,
    user: String,
    image: String,
    bin: PathBuf,
}

fn env() -> Option<&'static Env> {
    static ENV: OnceLock<Option<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let text = std::fs::read_to_string("/etc/terok-shield-test/env").ok();
        let root = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")));
        let (Some(text), true) = (text, root) else {
            let why = "needs root and tests/env/setup.sh";
            assert_ne!(std::env::var("TEROK_SHIELD_REQUIRE_NETNS").as_deref(), Ok("1"), "podman tests: {why}");
            eprintln!("SKIP podman tests: {why}");
            return None;
        };
        let vars: Vec<(String, String)> =
            text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        // Binaries the test user can execute.
        let bin = PathBuf::from(format!("/tmp/tsh-test-bin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap_or_else(|e| panic!("{e}"));
        for name in ["terok-shield", "terok-shield-hook"] {
            let src = PathBuf::from(env!("CARGO_BIN_EXE_terok-shield")).with_file_name(name);
            std::fs::copy(&src, bin.join(name)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        Some(Env { user: get("TEROK_SHIELD_TEST_USER"), image: get("TEROK_SHIELD_TEST_IMAGE"), vars, bin })
    })
    .as_ref()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command) -> Out {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Who runs the commands: root (rootful podman) or the test user (rootless).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Root,
    User,
}

/// A per-test home: state and config roots owned by whoever runs the test.
struct Home {
    who: Who,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
    /// Rootful tests run one at a time: rootful containers share netavark's bridge, address
    /// allocation and NAT, and overlapping rootful tests intermittently lost an allowlisted
    /// host's replies under podman 4.3. Rootless tests (own slirp4netns stack each) overlap.
    _rootful: Option<std::sync::MutexGuard<'static, ()>>,
}

static ROOTFUL: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Home {
    fn new(who: Who) -> Home {
        let tmp = tempfile::Builder::new().prefix("tsh-podman-").tempdir_in("/tmp").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("h");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap_or_else(|e| panic!("{e}"));
        if who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            run(Command::new("chown").args([&format!("{}:", e.user), &dir.display().to_string()]));
        }
        let rootful = (who == Who::Root).then(|| ROOTFUL.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        Home { who, dir, _tmp: tmp, _rootful: rootful }
    }

    /// Write a (large) profile directly, owned by whoever runs the test.
    fn profile_file(&self, name: &str, text: &str) {
        let dir = self.dir.join("config/profiles");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join(format!("{name}.txt"));
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        if self.who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            run(Command::new("chown").args([
                "-R",
                &format!("{}:", e.user),
                &self.dir.join("config").display().to_string(),
            ]));
        }
    }

    /// Write `rel` under the home, owned by whoever runs the test.
    fn file(&self, rel: &str, text: &str, mode: u32) {
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("{e}"));
        if self.who == Who::User {
            let e = env().unwrap_or_else(|| unreachable!());
            let top = rel.split('/').next().unwrap_or(rel);
            run(Command::new("chown").args(["-R", &format!("{}:", e.user), &self.dir.join(top).display().to_string()]));
        }
    }

    fn profile(&self, name: &str, text: &str) {
        let p = format!("config/profiles/{name}.txt");
        self.sh(&format!("mkdir -p config/profiles && printf '%s' '{text}' > {p}"));
    }

    /// A command as `who`, in the home dir, with the state/config roots set.
    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let e = env().unwrap_or_else(|| unreachable!());
        let state = self.dir.join("state").display().to_string();
        let config = self.dir.join("config").display().to_string();
        let mut c = match self.who {
            Who::Root => {
                let mut c = Command::new(program);
                c.env_clear()
                    .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .env("HOME", "/root");
                for (k, v) in &e.vars {
                    c.env(k, v);
                }
                c.args(args);
                c
            }
            Who::User => {
                let uid = run(Command::new("id").args(["-u", &e.user])).stdout.trim().to_string();
                let mut c = Command::new("runuser");
                c.args([
                    "-u",
                    &e.user,
                    "--",
                    "env",
                    "-i",
                    &format!("HOME=/home/{}", e.user),
                    &format!("USER={}", e.user),
                ]);
                c.arg("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                    .arg(format!("XDG_RUNTIME_DIR=/run/user/{uid}"));
                c.arg(format!("TEROK_SHIELD_STATE_DIR={state}")).arg(format!("TEROK_SHIELD_CONFIG_DIR={config}"));
                c.arg(program).args(args);
                c
            }
        };
        c.env("TEROK_SHIELD_STATE_DIR", &state).env("TEROK_SHIELD_CONFIG_DIR", &config).current_dir(&self.dir);
        c
    }

    fn sh(&self, script: &str) -> Out {
        let out = run(&mut self.cmd("sh", &["-c", script]));
        assert_eq!(out.code, 0, "{script}: {}", out.stderr);
        out
    }

    fn shield(&self, args: &[&str]) -> Out {
        let e = env().unwrap_or_else(|| unreachable!());
        run(&mut self.cmd(&e.bin.join("terok-shield").display().to_string(), args))
    }

    /// `terok-shield` with the test DNS server as the host's resolver ([`with_test_dns`]).
    fn shield_with_test_dns(&self, args: &[&str]) -> Out {
        let e = env().unwrap_or_else(|| unreachable!());
        run(&mut with_test_dns(&self.cmd(&e.bin.join("terok-shield").display().to_string(), args)))
    }

    fn podman(&self, args: &[&str]) -> Out {
        run(&mut self.cmd("podman", args))
    }

    /// Probe `want`'s hosts from inside `container` and check the outcome.
    fn probe(&self, container: &str, what: &str, want: &[(&str, bool)]) {
        let stdout = settle(want, |hs| {
            let mut args = vec!["exec", container, "sh", "-c", PROBE, "probe"];
            args.extend(hs);
            self.podman(&args).stdout
        });
        expect(&stdout, want, what);
    }

    fn state_dir(&self, container: &str) -> PathBuf {
        self.dir.join("state/containers").join(container)
    }
}

/// Setup once per test binary and user (a concurrent second setup would fail on the lock).
fn ensure_setup(who: Who) {
    static ROOT: OnceLock<()> = OnceLock::new();
    static USER: OnceLock<()> = OnceLock::new();
    let once = if who == Who::Root { &ROOT } else { &USER };
    once.get_or_init(|| {
        let h = Home::new(who);
        let out = h.shield(&["setup"]);
        assert_eq!(out.code, 0, "setup as {who:?}: {}", out.stderr);
        let status = h.shield(&["status"]);
        assert!(status.stdout.contains("Hooks:    global\nHealth:   ok"), "{who:?}: {}", status.stdout);
    });
}

/// One line per host: `<host> ok` or `<host> fail <why>`. Waits up to 3 s for an IPv6
/// default route first (slirp4netns configures IPv6 by router advertisement).
const PROBE: &str = r#"i=0; while [ $i -lt 30 ] && ! ip -6 route | grep -q default; do sleep 0.1; i=$((i+1)); done; for h in "$@"; do r=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$h" 80 2>&1 | tail -n 1); if [ "$r" = tshield-ok ]; then echo "$h ok"; else echo "$h fail $r"; fi; done"#;

fn verdicts(stdout: &str) -> Vec<(String, bool)> {
    stdout.lines().filter_map(|l| l.split_once(' ')).map(|(h, r)| (h.to_string(), r.starts_with("ok"))).collect()
}

/// Probe `want`'s hosts with `probe` (which returns PROBE's output); a host expected to
/// answer that did not is probed up to twice more, a second apart: rootful traffic crosses
/// the host's NAT, which netavark rewrites whenever a parallel test starts or stops a
/// container. Hosts expected to be refused are never retried, so no refusal is ever masked.
fn settle(want: &[(&str, bool)], mut probe: impl FnMut(&[&str]) -> String) -> String {
    let hosts: Vec<&str> = want.iter().map(|(h, _)| *h).collect();
    let mut got: Vec<(String, bool, String)> = probe(&hosts)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(h, r)| (h.to_string(), r.starts_with("ok"), r.to_string()))
        .collect();
    for _ in 0..2 {
        let again: Vec<&str> = want
            .iter()
            .filter(|(h, ok)| *ok && got.iter().any(|(g, gok, _)| g == h && !gok))
            .map(|(h, _)| *h)
            .collect();
        if again.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
        for line in probe(&again).lines() {
            if let Some((h, r)) = line.split_once(' ') {
                if let Some(slot) = got.iter_mut().find(|(g, _, _)| g == h) {
                    *slot = (h.to_string(), r.starts_with("ok"), r.to_string());
                }
            }
        }
    }
    got.iter().map(|(h, _, r)| format!("{h} {r}\n")).collect()
}

fn expect(stdout: &str, want: &[(&str, bool)], what: &str) {
    let got = verdicts(stdout);
    let want: Vec<(String, bool)> = want.iter().map(|(h, ok)| (h.to_string(), *ok)).collect();
    assert_eq!(got, want, "{what}: {stdout}");
}

/// A shielded container for `who`: profile `lab` allowing `allowlist`, started detached
/// with `workload`; `None` (skipped with a reason) when the test environment is missing.
fn shielded(who: Who, tag: &str, allowlist: &[&str], workload: &[&str]) -> Option<(Home, String)> {
    start_shielded(who, tag, allowlist, workload, false, None)
}

/// Like [`shielded`]; with `test_dns`, `run` (and so podman, slirp4netns and the upstream
/// that prepare records) sees the test DNS server as the host's resolver.
fn start_shielded(
    who: Who,
    tag: &str,
    allowlist: &[&str],
    workload: &[&str],
    test_dns: bool,
    config_yml: Option<&str>,
) -> Option<(Home, String)> {
    let e = env()?;
    ensure_setup(who);
    let h = Home::new(who);
    if let Some(text) = config_yml {
        h.file("config/config.yml", text, 0o600);
    }
    h.profile("lab", &allowlist.iter().map(|a| format!("+{a}\n")).collect::<String>());
    let name = format!("tsh-{tag}-{}-{:?}", std::process::id(), who).to_lowercase();
    let mut args = vec!["run", name.as_str(), "--profiles", "lab", "--", "-d", e.image.as_str()];
    args.extend(workload);
    let out = if test_dns { h.shield_with_test_dns(&args) } else { h.shield(&args) };
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    Some((h, name))
}

fn shielded_probe(who: Who, want: &[(&str, bool)]) {
    let allowlist: Vec<&str> = want.iter().filter(|(_, ok)| *ok).map(|(a, _)| *a).collect();
    let Some((h, name)) = shielded(who, "probe", &allowlist, &["sleep", "600"]) else { return };
    h.probe(&name, &format!("{who:?}"), want);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_container_reaches_only_its_allowlist_on_both_families() {
    shielded_probe(
        Who::Root,
        &[(ALLOWED_V4, true), (ALLOWED_V6, true), (UNLISTED_V4, false), (UNLISTED_V6, false), (PRIVATE_V4, false)],
    );
}

#[test]
fn rootless_container_reaches_only_its_allowlist_on_both_families() {
    shielded_probe(
        Who::User,
        &[(ALLOWED_V4, true), (ALLOWED_V6, true), (UNLISTED_V4, false), (UNLISTED_V6, false), (PRIVATE_V4, false)],
    );
}

fn restart_keeps_runtime_decisions(who: Who) {
    let Some((h, name)) = shielded(who, "restart", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let probe = |what: &str, want: &[(&str, bool)]| h.probe(&name, &format!("{who:?} {what}"), want);
    probe("first start", &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    // While it ran, the operator allowed one host and denied another (policy/live is what
    // the allow/deny verbs write).
    std::fs::write(h.state_dir(&name).join("policy/live"), format!("+{UNLISTED_V4}\n-{ALLOWED_V4}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.podman(&["stop", "-t", "0", &name]).code, 0);
    let started = h.podman(&["start", &name]);
    assert_eq!(started.code, 0, "{}", started.stderr);
    probe("after stop + start", &[(ALLOWED_V4, false), (UNLISTED_V4, true)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_restart_keeps_runtime_allows_and_denies() {
    restart_keeps_runtime_decisions(Who::Root);
}

#[test]
fn rootless_restart_keeps_runtime_allows_and_denies() {
    restart_keeps_runtime_decisions(Who::User);
}

/// Each broken start: podman refuses it and the workload never writes its marker.
fn fail_closed(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let good = h.shield(&["prepare", "good", "--profiles", "lab"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let sd = h.state_dir("good");
    h.sh("mkdir -p markers bad-ruleset && chmod 0777 markers");
    // Bundles broken in each way, made from the good one.
    h.sh(&format!("cp -a {0} writable && chmod 0770 writable && ln -s {0} link", sd.display()));
    h.sh(&format!("cp -a {0} corrupt && sed -i 's/policy drop;/policy accept;/' corrupt/ruleset.nft", sd.display()));
    h.sh(&format!("cp -a {0} noruleset && rm noruleset/ruleset.nft", sd.display()));
    // dnsmasq that exits 1, and one that exits 0 but never starts (no pid file).
    assert!(sd.join("dnsmasq.conf").exists(), "{who:?}: the good bundle is not on a dnsmasq tier");
    h.file("bin/dnsmasq-fails", "#!/bin/sh\nexit 1\n", 0o755);
    h.file("bin/dnsmasq-vanishes", "#!/bin/sh\nexit 0\n", 0o755);
    for (copy, bin) in [("dnsfails", "dnsmasq-fails"), ("dnsvanishes", "dnsmasq-vanishes")] {
        let bin = h.dir.join("bin").join(bin);
        h.sh(&format!("cp -a {} {copy} && echo {} > {copy}/dnsmasq.command", sd.display(), bin.display()));
    }
    let d = |n: &str| h.dir.join(n).display().to_string();
    let foreign = if who == Who::Root { "/tmp".to_string() } else { std::env::temp_dir().display().to_string() };
    let mut cases: Vec<(&str, String, &str)> = vec![
        ("relative state dir", "relative/dir".into(), "18"),
        ("symlinked state dir", d("link"), "18"),
        ("group-writable state dir", d("writable"), "18"),
        ("wrong version", sd.display().to_string(), "17"),
        ("corrupted ruleset", d("corrupt"), "18"),
        ("missing ruleset", d("noruleset"), "18"),
        ("dnsmasq exits 1", d("dnsfails"), "18"),
        ("dnsmasq never starts", d("dnsvanishes"), "18"),
    ];
    if who == Who::User {
        cases.push(("foreign-owned state dir", foreign, "18"));
    } else {
        let owned = d("foreign");
        h.sh(&format!("cp -a {} {owned} && chown 65534 {owned}", sd.display()));
        cases.push(("foreign-owned state dir", owned, "18"));
    }
    let markers = h.dir.join("markers");
    for (i, (what, state_dir, version)) in cases.iter().enumerate() {
        let marker = format!("/m/ran-{i}");
        let out = h.podman(&[
            "run",
            "--rm",
            "--annotation",
            "terok.shield.profiles=lab",
            "--annotation",
            &format!("terok.shield.state_dir={state_dir}"),
            "--annotation",
            &format!("terok.shield.version={version}"),
            "-v",
            &format!("{}:/m", markers.display()),
            &e.image,
            "touch",
            &marker,
        ]);
        assert_ne!(out.code, 0, "{who:?} {what}: podman started the container");
        assert!(!markers.join(format!("ran-{i}")).exists(), "{who:?} {what}: the workload ran");
    }
    // The control: the good bundle starts and the workload runs.
    let out = h.podman(&[
        "run",
        "--rm",
        "--annotation",
        "terok.shield.profiles=lab",
        "--annotation",
        &format!("terok.shield.state_dir={}", sd.display()),
        "--annotation",
        "terok.shield.version=18",
        "-v",
        &format!("{}:/m", markers.display()),
        &e.image,
        "touch",
        "/m/ran-good",
    ]);
    assert_eq!(out.code, 0, "{who:?} control: {}", out.stderr);
    assert!(markers.join("ran-good").exists(), "{who:?}: the control container did not run");
}

#[test]
fn rootful_failures_fail_closed() {
    fail_closed(Who::Root);
}

#[test]
fn rootless_failures_fail_closed() {
    fail_closed(Who::User);
}

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

#[test]
fn setup_root_through_sudo() {
    let Some(e) = env() else { return };
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

/// The reference's rootless hook fails with "Message too long" past about 1 700 entries:
/// ours loads the table first and the elements in bounded batches.
#[test]
fn rootless_container_starts_with_a_hundred_thousand_entry_allowlist() {
    let Some(e) = env() else { return };
    ensure_setup(Who::User);
    let h = Home::new(Who::User);
    let mut text = String::with_capacity(100_001 * 14);
    for i in 0..100_000u32 {
        text.push_str(&format!("+{}\n", std::net::Ipv4Addr::from(0x0B00_0000 + i * 3)));
    }
    text.push_str(&format!("+{ALLOWED_V4}\n"));
    h.profile_file("big", &text);
    let name = format!("tsh-big-{}", std::process::id());
    let out = h.shield(&[
        "run",
        &name,
        "--profiles",
        "big",
        "--",
        "--rm",
        &e.image,
        "sh",
        "-c",
        PROBE,
        "probe",
        ALLOWED_V4,
        UNLISTED_V4,
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    expect(&out.stdout, &[(ALLOWED_V4, true), (UNLISTED_V4, false)], "100 000 entries, rootless");
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

/// setup installs a copy of the hook binary: deleting the binaries it was installed from
/// (a build tree) does not disarm the hooks.
#[test]
fn hooks_keep_working_after_the_build_tree_is_deleted() {
    let Some(e) = env() else { return };
    // Root's setup lock is global: let the shared root setup finish first.
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    let build = h.dir.join("build");
    std::fs::create_dir(&build).unwrap_or_else(|err| panic!("{err}"));
    for name in ["terok-shield", "terok-shield-hook"] {
        std::fs::copy(e.bin.join(name), build.join(name)).unwrap_or_else(|err| panic!("{err}"));
    }
    let shield = build.join("terok-shield").display().to_string();
    let hooks = h.dir.join("hooks");
    let env_prefix = format!(
        "TEROK_SHIELD_SYSTEM_HOOKS_DIR={} TEROK_ROOT={1}/terok XDG_CONFIG_HOME={1}/xdg",
        hooks.display(),
        h.dir.display()
    );
    h.sh(&format!("{env_prefix} {shield} setup"));
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let flags = h.sh(&format!("{env_prefix} {shield} prepare gone --profiles lab --json")).stdout;
    let flags: Vec<String> = serde_json::from_str(&flags).unwrap_or_else(|err| panic!("{err}"));
    std::fs::remove_dir_all(&build).unwrap_or_else(|err| panic!("{err}"));
    let name = format!("tsh-gone-{}", std::process::id());
    let mut args: Vec<String> = vec![
        "run".into(),
        "-d".into(),
        "--name".into(),
        name.clone(),
        "--hooks-dir".into(),
        hooks.display().to_string(),
    ];
    args.extend(flags.into_iter().filter(|f| f != "--name" && f != "gone"));
    args.extend([e.image.clone(), "sleep".into(), "600".into()]);
    let out = h.podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let want = [(ALLOWED_V4, true), (UNLISTED_V4, false)];
    let stdout = settle(&want, |hs| {
        let mut a = vec!["exec", name.as_str(), "sh", "-c", PROBE, "probe"];
        a.extend(hs);
        h.podman(&a).stdout
    });
    expect(&stdout, &want, "hooks from the installed copy");
    h.podman(&["rm", "-f", &name]);
}

/// nft missing when the hook runs (its PATH, which the descriptors carry, has no nft):
/// podman refuses the start and the workload never runs.
#[test]
fn rootful_start_fails_closed_when_nft_is_missing() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let flags = h.shield(&["prepare", "nonft", "--profiles", "lab", "--json"]);
    assert_eq!(flags.code, 0, "{}", flags.stderr);
    let flags: Vec<String> = serde_json::from_str(&flags.stdout).unwrap_or_else(|err| panic!("{err}"));
    // The installed descriptors, with a PATH that lacks nft.
    let installed = terok_shield::setup::system_hooks_dir(&terok_shield::paths::Env::fixed(&[], true));
    let hooks = h.dir.join("hooks-no-nft");
    std::fs::create_dir(&hooks).unwrap_or_else(|err| panic!("{err}"));
    for name in ["terok-shield-createRuntime.json", "terok-shield-poststop.json"] {
        let text = std::fs::read_to_string(installed.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"));
        let mut d: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
        d["hook"]["env"] = serde_json::json!(["PATH=/nonexistent:/usr/bin:/bin"]);
        std::fs::write(hooks.join(name), d.to_string()).unwrap_or_else(|err| panic!("{err}"));
    }
    h.sh("mkdir -p markers && chmod 0777 markers");
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--hooks-dir".into(), hooks.display().to_string()];
    args.extend(flags.into_iter().filter(|f| f != "--name" && f != "nonft"));
    args.extend([
        "-v".into(),
        format!("{}:/m", h.dir.join("markers").display()),
        e.image.clone(),
        "touch".into(),
        "/m/ran".into(),
    ]);
    let out = h.podman(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(out.code, 0, "podman started the container without nft");
    assert!(!h.dir.join("markers/ran").exists(), "the workload ran");
    let log = std::fs::read_to_string(h.state_dir("nonft").join("hook-error.log")).unwrap_or_default();
    assert!(log.contains("nft not found on PATH"), "{log}");
}

/// Every file of a bundle with its content (for "nothing changed" checks).
fn bundle_snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    for sub in ["", "policy"] {
        let d = dir.join(sub);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten().filter(|e| e.path().is_file()) {
                v.push((
                    format!("{sub}/{}", e.file_name().to_string_lossy()),
                    std::fs::read(e.path()).unwrap_or_default(),
                ));
            }
        }
    }
    v.sort();
    v
}

fn live_control(who: Who) {
    let Some((h, name)) = shielded(who, "live", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let probe = |what: &str, want: &[(&str, bool)]| h.probe(&name, &format!("{who:?} {what}"), want);
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n");
    probe("before", &[(ALLOWED_V4, true), (UNLISTED_V4, false), (ALLOWED_V6, false)]);

    let out = h.shield(&["allow", &name, UNLISTED_V4]);
    assert_eq!(
        (out.code, out.stdout.clone()),
        (0, format!("Allowed {UNLISTED_V4} -> {UNLISTED_V4} for {name}\n")),
        "{}",
        out.stderr
    );
    let out = h.shield(&["allow", &name, "2001:DB8:100::10/128"]);
    assert_eq!(out.stdout, format!("Allowed 2001:DB8:100::10/128 -> {ALLOWED_V6} for {name}\n"), "{}", out.stderr);
    let out = h.shield(&["deny", &name, ALLOWED_V4]);
    assert_eq!(out.stdout, format!("Denied {ALLOWED_V4} ({ALLOWED_V4}) for {name}\n"), "{}", out.stderr);
    probe("after allow and deny", &[(ALLOWED_V4, false), (UNLISTED_V4, true), (ALLOWED_V6, true)]);
    // Re-allowing a denied address takes it out of the deny set.
    assert_eq!(h.shield(&["allow", &name, ALLOWED_V4]).code, 0);
    probe("after re-allow", &[(ALLOWED_V4, true)]);
    assert_eq!(h.shield(&["deny", &name, ALLOWED_V4]).code, 0);

    let sd = h.state_dir(&name);
    assert_eq!(
        std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default(),
        format!("+{UNLISTED_V4}\n+{ALLOWED_V6}\n-{ALLOWED_V4}\n")
    );
    let audit = std::fs::read_to_string(sd.join("audit.jsonl")).unwrap_or_default();
    assert!(
        audit.contains(&format!(
            "\"action\":\"allowed\",\"dest\":\"{UNLISTED_V4}\",\"detail\":\"target={UNLISTED_V4}\""
        )),
        "{audit}"
    );
    assert!(audit.contains(&format!("\"action\":\"denied\",\"dest\":\"{ALLOWED_V4}\"")), "{audit}");
    let rules = h.shield(&["rules", &name]);
    assert!(rules.stdout.starts_with("State: up\ntable inet terok_shield {"), "{}", rules.stdout);

    // Bad targets and unknown containers: one line, exit 1, nothing changed anywhere.
    let before = (bundle_snapshot(&sd), h.shield(&["rules", &name]).stdout);
    for args in [
        vec!["allow", name.as_str(), "1.2.3"],
        vec!["allow", name.as_str(), "10.0.0.0/33"],
        vec!["deny", name.as_str(), "::gg"],
        vec!["allow", name.as_str(), "*.*.example.com"],
        vec!["allow", name.as_str(), "bad$name"],
        vec!["allow", "no-such-container", "198.51.100.7"],
        vec!["allow", "../x", "198.51.100.7"],
    ] {
        let out = h.shield(&args);
        assert_eq!(out.code, 1, "{args:?}: {}", out.stdout);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("Error: "), "{args:?}: {}", out.stderr);
    }
    assert!(
        before == (bundle_snapshot(&sd), h.shield(&["rules", &name]).stdout),
        "{who:?}: a bad target changed something"
    );

    // 50 concurrent allows of distinct addresses: all 50 in the kernel and in policy/live.
    let e_bin = env().map(|e| e.bin.join("terok-shield").display().to_string()).unwrap_or_default();
    let script = format!("for i in $(seq 100 149); do {e_bin} allow {name} 198.51.100.$i >/dev/null & done; wait");
    h.sh(&script);
    let live = std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default();
    let listing = h.shield(&["rules", &name]).stdout;
    for i in 100..150 {
        assert!(live.contains(&format!("+198.51.100.{i}\n")), "{who:?}: 198.51.100.{i} lost from policy/live");
        assert!(listing.contains(&format!("198.51.100.{i}")), "{who:?}: 198.51.100.{i} not in the kernel");
    }
    // An allow and a deny of the same target racing: file and kernel agree at the end.
    let script = format!("for i in 1 2 3 4 5; do {e_bin} allow {name} 198.51.100.99 >/dev/null & {e_bin} deny {name} 198.51.100.99 >/dev/null & done; wait");
    h.sh(&script);
    let live = std::fs::read_to_string(sd.join("policy/live")).unwrap_or_default();
    let allowed_in_file = live.contains("+198.51.100.99\n");
    assert!(allowed_in_file != live.contains("-198.51.100.99\n"), "one entry per target: {live}");
    let listing = h.shield(&["rules", &name]).stdout;
    let allow_set = listing.split("set t40_project_allow_v4 {").nth(1).and_then(|s| s.split('}').next()).unwrap_or("");
    let deny_set = listing.split("set t20_security_deny_v4 {").nth(1).and_then(|s| s.split('}').next()).unwrap_or("");
    assert_eq!(allow_set.contains("198.51.100.99"), allowed_in_file, "kernel allow set disagrees with policy/live");
    assert_eq!(deny_set.contains("198.51.100.99"), !allowed_in_file, "kernel deny set disagrees with policy/live");

    h.podman(&["rm", "-f", &name]);
    assert_eq!(h.shield(&["status", &name]).stdout, "offline\n");
}

#[test]
fn rootful_live_allow_and_deny() {
    live_control(Who::Root);
}

#[test]
fn rootless_live_allow_and_deny() {
    live_control(Who::User);
}

const DENIED_V4: &str = "198.51.100.12";

fn postures(who: Who) {
    let Some((h, name)) = shielded(who, "posture", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    assert_eq!(h.shield(&["deny", &name, DENIED_V4]).code, 0);
    let step = |args: &[&str], says: &str, state: &str, want: &[(&str, bool)]| {
        let mut full = args.to_vec();
        full.insert(1, &name);
        let out = h.shield(&full);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, format!("{says}\n").as_str()),
            "{who:?} {args:?}: {}",
            out.stderr
        );
        assert_eq!(h.shield(&["status", &name]).stdout, format!("{state}\n"), "{who:?} {args:?}");
        h.probe(&name, &format!("{who:?} {args:?}"), want);
    };
    let all = |a: bool, u: bool, d: bool, p: bool| {
        [(ALLOWED_V4, a), (UNLISTED_V4, u), (DENIED_V4, d), (PRIVATE_V4, p), (LINK_LOCAL_V4, p)]
    };
    step(&["down"], &format!("Shield down for {name}"), "down", &all(true, true, false, false));
    // DISENGAGED passes the same probes: each refusal above was the shield's.
    step(
        &["down", "--disengage"],
        &format!("Shield down for {name} (disengaged)"),
        "disengaged",
        &all(true, true, true, true),
    );
    step(
        &["quarantine"],
        &format!("Shield QUARANTINED for {name} — all traffic dropped"),
        "quarantine",
        &[(ALLOWED_V4, false)],
    );
    let refused = h.shield(&["allow", &name, UNLISTED_V4]);
    assert_eq!(refused.code, 1, "{who:?}: allow while quarantined");
    assert!(refused.stderr.contains("quarantined?"), "{}", refused.stderr);
    step(&["up"], &format!("Shield up for {name}"), "up", &all(true, false, false, false));
    step(&["reset"], &format!("Shield reset for {name} — learned allow state forgotten"), "up", &[(ALLOWED_V4, true)]);
    // A bad container id is refused before anything changes.
    let out = h.shield(&["down", &name, "--container-id", "xyz"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, "Error: Unsafe container id: 'xyz'\n"));
    assert_eq!(h.shield(&["status", &name]).stdout, "up\n");
    let audit = std::fs::read_to_string(h.state_dir(&name).join("audit.jsonl")).unwrap_or_default();
    for action in ["shield_down", "shield_quarantine", "shield_up", "shield_reset"] {
        assert!(audit.contains(&format!("\"action\":\"{action}\"")), "{who:?}: no {action} row");
    }
    assert!(audit.contains("\"detail\":\"disengaged=True\""));
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_postures() {
    postures(Who::Root);
}

#[test]
fn rootless_postures() {
    postures(Who::User);
}

/// Revocation ends live flows: a connection open to a test host (an echo every 0.2 s)
/// stops passing traffic as soon as the host is denied, or the container quarantined.
fn revocation_ends_live_flows(who: Who, revoke: &[&str]) {
    let case: String = revoke.join("-").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let workload =
        format!("(while :; do echo ping; sleep 0.2; done) | nc {ALLOWED_V4} 7000 > /tmp/echo.log 2>&1; sleep 600");
    let Some((h, name)) = shielded(who, &format!("flow-{case}"), &[ALLOWED_V4], &["sh", "-c", &workload]) else {
        return;
    };
    let echoes =
        || h.podman(&["exec", &name, "grep", "-c", "ping", "/tmp/echo.log"]).stdout.trim().parse::<u32>().unwrap_or(0);
    let wait = |secs: f64| std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    wait(1.0);
    let (a, b) = (echoes(), {
        wait(1.0);
        echoes()
    });
    assert!(b > a, "{who:?}: the flow is not flowing before the revocation ({a} -> {b})");
    let mut args = vec![revoke[0], name.as_str()];
    args.extend(&revoke[1..]);
    let out = h.shield(&args);
    assert_eq!(out.code, 0, "{who:?} {revoke:?}: {}", out.stderr);
    wait(0.5);
    let c = echoes();
    wait(1.5);
    let d = echoes();
    assert_eq!(c, d, "{who:?} {revoke:?}: the open connection still passes traffic ({c} -> {d})");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_deny_ends_live_flows() {
    revocation_ends_live_flows(Who::Root, &["deny", ALLOWED_V4]);
}

#[test]
fn rootless_deny_ends_live_flows() {
    revocation_ends_live_flows(Who::User, &["deny", ALLOWED_V4]);
}

#[test]
fn rootful_quarantine_ends_live_flows() {
    revocation_ends_live_flows(Who::Root, &["quarantine"]);
}

#[test]
fn rootless_deny_of_a_network_ends_live_flows() {
    revocation_ends_live_flows(Who::User, &["deny", "198.51.100.0/28"]);
}

/// `cmd` run in a private mount namespace whose /etc/resolv.conf names the test DNS server
/// (tests/env/setup.sh), so host-side name resolution stays on this machine.
fn with_test_dns(cmd: &Command) -> Command {
    with_test_files(cmd, None, None)
}

/// [`with_test_dns`], with `resolv` instead of the test server's resolv.conf and `hosts` as
/// the host's /etc/hosts.
fn with_test_files(cmd: &Command, resolv: Option<&std::path::Path>, hosts: Option<&std::path::Path>) -> Command {
    let resolv = resolv.map_or_else(|| "/run/tshield-hosts/resolv.conf".to_string(), |r| r.display().to_string());
    let mut script = format!("mount --bind {resolv} /etc/resolv.conf");
    if let Some(h) = hosts {
        script.push_str(&format!(" && mount --bind {} /etc/hosts", h.display()));
    }
    let mut c = Command::new("unshare");
    c.args(["-m", "sh", "-c", &format!("{script} && exec \"$@\""), "sh"]);
    c.arg(cmd.get_program()).args(cmd.get_args());
    c.env_clear();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            c.env(k, v);
        }
    }
    if let Some(dir) = cmd.get_current_dir() {
        c.current_dir(dir);
    }
    c
}

fn live_domains(who: Who) {
    let Some((h, name)) = shielded(who, "dom", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let shield = |args: &[&str]| h.shield_with_test_dns(args);
    let out = shield(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(
        out.stdout,
        format!("Allowed unlisted.shield.test -> {UNLISTED_V4}, {UNLISTED_V6} for {name}\n"),
        "{}",
        out.stderr
    );
    let out = shield(&["deny", &name, "allowed.shield.test"]);
    assert_eq!(
        out.stdout,
        format!("Denied allowed.shield.test ({ALLOWED_V4}, {ALLOWED_V6}) for {name}\n"),
        "{}",
        out.stderr
    );
    h.probe(&name, &format!("{who:?} after domain allow/deny"), &[(ALLOWED_V4, false), (UNLISTED_V4, true)]);
    let live = std::fs::read_to_string(h.state_dir(&name).join("policy/live")).unwrap_or_default();
    assert_eq!(
        live,
        format!(
            "+{UNLISTED_V4}\n+{UNLISTED_V6}\n+unlisted.shield.test\n-{ALLOWED_V4}\n-{ALLOWED_V6}\n-allowed.shield.test\n"
        )
    );
    let before = bundle_snapshot(&h.state_dir(&name));
    let out = shield(&["allow", &name, "nothing.shield.test"]);
    assert_eq!((out.code, out.stderr.as_str()), (1, format!("Error: No IPs allowed for {name}\n").as_str()));
    assert!(before == bundle_snapshot(&h.state_dir(&name)), "a refused domain changed the bundle");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_live_domains() {
    live_domains(Who::Root);
}

#[test]
fn rootless_live_domains() {
    live_domains(Who::User);
}

/// Addresses learned from DNS answers survive down + up; a learned address that is denied
/// meanwhile never comes back. (dnsmasq fills t40_dns_v4 once the DNS work lands; here the
/// test puts them there through the container's netns.)
#[test]
fn learned_addresses_survive_postures_but_denied_ones_do_not() {
    let Some((h, name)) = shielded(Who::Root, "learned", &[ALLOWED_V4], &["sleep", "600"]) else { return };
    let pid = h.podman(&["inspect", "--format", "{{.State.Pid}}", &name]).stdout.trim().to_string();
    let add = run(Command::new("nsenter").args([
        "-t",
        &pid,
        "-n",
        "nft",
        "add",
        "element",
        "inet",
        "terok_shield",
        "t40_dns_v4",
        &format!("{{ {UNLISTED_V4}, {DENIED_V4} }}"),
    ]));
    assert_eq!(add.code, 0, "{}", add.stderr);
    h.probe(&name, "learned", &[(UNLISTED_V4, true), (DENIED_V4, true)]);
    assert_eq!(h.shield(&["deny", &name, DENIED_V4]).code, 0);
    assert_eq!(h.shield(&["down", &name]).code, 0);
    assert_eq!(h.shield(&["up", &name]).code, 0);
    let learned = run(Command::new("nsenter").args([
        "-t",
        &pid,
        "-n",
        "nft",
        "list",
        "set",
        "inet",
        "terok_shield",
        "t40_dns_v4",
    ]))
    .stdout;
    assert!(learned.contains(UNLISTED_V4), "a learned address was lost: {learned}");
    assert!(!learned.contains(DENIED_V4), "a denied address came back: {learned}");
    h.probe(&name, "after down + up", &[(UNLISTED_V4, true), (DENIED_V4, false)]);
    assert_eq!(h.shield(&["reset", &name]).code, 0);
    h.probe(&name, "after reset", &[(UNLISTED_V4, false), (ALLOWED_V4, true)]);
    h.podman(&["rm", "-f", &name]);
}

/// A name for this test alone in the test DNS server (tests/env/setup.sh reads
/// /run/tshield-hosts/dns-hosts/ on every change), pointed at `addr`; written by rename so
/// the server never reads half a file.
fn test_name(name: &str, addr: &str) {
    let dir = std::path::Path::new("/run/tshield-hosts/dns-hosts");
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("{addr} {name}\n")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
    // The server reads it on inotify; wait until it answers with the new address.
    for _ in 0..50 {
        let out = run(Command::new("dig").args(["+short", "+time=1", "+tries=1", "@198.51.100.53", name, "A"]));
        if out.stdout.trim() == addr {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the test DNS server does not answer {name} with {addr}");
}

/// Names on the live DNS tier, through the container's own dnsmasq and a test DNS server.
fn dns_names(who: Who) {
    let rot = format!("rot-{}-{who:?}.shield.test", std::process::id()).to_lowercase();
    test_name(&rot, UNLISTED_V4);
    let allow = ["allowed.shield.test", "private.shield.test", rot.as_str()];
    let Some((h, name)) = start_shielded(who, "dns", &allow, &["sleep", "600"], true, None) else { return };
    let tier = std::fs::read_to_string(h.state_dir(&name).join("dns.tier")).unwrap_or_default();
    if tier.trim() != "dnsmasq-live" {
        // dnsmasq-base on Debian 12 is built with nftset; anything else is a broken setup.
        panic!("{who:?}: DNS tier {tier:?}, want dnsmasq-live");
    }
    h.probe(
        &name,
        &format!("{who:?} by name"),
        &[
            ("allowed.shield.test", true),
            ("www.allowed.shield.test", true),
            ("unlisted.shield.test", false),
            ("private.shield.test", false),
            (PRIVATE_V4, false),
        ],
    );
    // An AAAA answer fills the IPv6 learned set: the v6 address answers once looked up.
    let six = h.podman(&["exec", &name, "nslookup", "-type=AAAA", "allowed.shield.test"]);
    assert!(six.stdout.contains(ALLOWED_V6), "{who:?}: {}", six.stdout);
    h.probe(&name, &format!("{who:?} AAAA"), &[(ALLOWED_V6, true), (UNLISTED_V6, false)]);
    // The guarded answer never reached a set, and the container was told NXDOMAIN.
    let rules = h.shield(&["rules", &name]).stdout;
    assert!(!rules.contains(PRIVATE_V4), "{who:?}: a private answer reached a set: {rules}");
    let lookup = h.podman(&["exec", &name, "nslookup", "private.shield.test"]);
    assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    // ... and the reader audited the refusal.
    let audited = within(std::time::Duration::from_secs(3), || {
        std::fs::read_to_string(h.state_dir(&name).join("audit.jsonl"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"action\":\"dns_rebind\"") && l.contains("\"domain\":\"private.shield.test\""))
    });
    assert!(audited, "{who:?}: no dns_rebind row for private.shield.test");
    // A name that moves to another address stays reachable.
    h.probe(&name, &format!("{who:?} rotating, first address"), &[(rot.as_str(), true)]);
    test_name(&rot, DENIED_V4);
    h.probe(&name, &format!("{who:?} rotating, second address"), &[(rot.as_str(), true)]);
    // A new name becomes reachable without a restart.
    let out = h.shield_with_test_dns(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    h.probe(
        &name,
        &format!("{who:?} after allow"),
        &[("unlisted.shield.test", true), ("www.unlisted.shield.test", true)],
    );
    // A wildcard on the live tier: names under it become reachable as they are answered.
    let wild = format!("w{}-{who:?}.shield.test", std::process::id()).to_lowercase();
    let sub = format!("sub.{wild}");
    test_name(&sub, UNLISTED_V4);
    let out = h.shield_with_test_dns(&["allow", &name, &format!("*.{wild}")]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("Allowed *.{wild} -> each address dnsmasq answers for {name}\n").as_str()),
        "{who:?}: {}",
        out.stderr
    );
    h.probe(&name, &format!("{who:?} wildcard"), &[(sub.as_str(), true)]);
    let _ = std::fs::remove_file(format!("/run/tshield-hosts/dns-hosts/{sub}"));
    // A denied domain is sinkholed: the container's resolver answers NXDOMAIN.
    let out = h.shield_with_test_dns(&["deny", &name, "denied.shield.test"]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let lookup = h.podman(&["exec", &name, "nslookup", "denied.shield.test"]);
    assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    h.probe(&name, &format!("{who:?} after deny"), &[("allowed.shield.test", true), (DENIED_V4, false)]);
    let conf = std::fs::read_to_string(h.state_dir(&name).join("dnsmasq.conf")).unwrap_or_default();
    assert!(conf.contains("local=/denied.shield.test/\n"), "{conf}");
    assert!(conf.contains("nftset=/unlisted.shield.test/"), "{conf}");
    // poststop reaps dnsmasq.
    let pid = std::fs::read_to_string(h.state_dir(&name).join("dnsmasq.pid")).unwrap_or_default();
    assert!(std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(), "{who:?}: dnsmasq is not running");
    h.podman(&["rm", "-f", &name]);
    // podman runs poststop from its cleanup process, which may finish after `rm` returns.
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
    });
    assert!(gone, "{who:?}: dnsmasq outlived its container");
    let _ = std::fs::remove_file(format!("/run/tshield-hosts/dns-hosts/{rot}"));
}

/// A bundle deleted while its container runs: poststop still stops the container's dnsmasq.
fn orphaned_dnsmasq(who: Who) {
    let Some((h, name)) = start_shielded(who, "orphan", &["allowed.shield.test"], &["sleep", "600"], true, None) else {
        return;
    };
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    let procs: Vec<(&str, String)> = [("dnsmasq", read("dnsmasq.pid")), ("reader", read("reader.pid"))]
        .into_iter()
        .map(|(what, pid)| (what, format!("/proc/{}", pid.trim())))
        .collect();
    for (what, dir) in &procs {
        assert!(std::path::Path::new(dir).exists() && dir != "/proc/", "{who:?}: no {what}");
    }
    h.sh(&format!("rm -rf {}", h.state_dir(&name).display()));
    let out = h.podman(&["rm", "-f", &name]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for (what, dir) in &procs {
        let gone = within(std::time::Duration::from_secs(5), || !std::path::Path::new(dir).exists());
        assert!(gone, "{who:?}: {what} outlived its container and its bundle");
    }
}

#[test]
fn rootful_poststop_reaps_dnsmasq_of_a_deleted_bundle() {
    orphaned_dnsmasq(Who::Root);
}

#[test]
fn rootless_poststop_reaps_dnsmasq_of_a_deleted_bundle() {
    orphaned_dnsmasq(Who::User);
}

/// `run … -- --runtime …/krun`: dnsmasq listens on 169.254.1.3 (added to `lo` by the hook),
/// the container's resolv.conf names it, and a live `allow` keeps it there. The "krun" here
/// is a wrapper around runc: what is under test is the shield's side of the runtime.
#[test]
fn rootful_krun_runtime_serves_dns_on_its_own_address() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.file("bin/krun", "#!/bin/sh\nexec runc \"$@\"\n", 0o755);
    h.profile("lab", "+allowed.shield.test\n");
    let name = format!("tsh-krun-{}", std::process::id());
    let krun = h.dir.join("bin/krun").display().to_string();
    let args = ["run", &name, "--profiles", "lab", "--", "-d", "--runtime", &krun, &e.image, "sleep", "600"];
    let out = h.shield_with_test_dns(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(h.state_dir(&name).join(f)).unwrap_or_default();
    assert_eq!(read("resolv.conf"), "nameserver 169.254.1.3\noptions ndots:0\n");
    let lo = h.podman(&["exec", &name, "ip", "addr", "show", "lo"]).stdout;
    assert!(lo.contains("inet 169.254.1.3/32"), "{lo}");
    h.probe(&name, "krun", &[("allowed.shield.test", true), ("unlisted.shield.test", false)]);
    let out = h.shield_with_test_dns(&["allow", &name, "unlisted.shield.test"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(read("dnsmasq.conf").contains("listen-address=169.254.1.3\n"), "{}", read("dnsmasq.conf"));
    h.probe(&name, "krun after allow", &[("unlisted.shield.test", true)]);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_names_on_the_live_dns_tier() {
    dns_names(Who::Root);
}

#[test]
fn rootless_names_on_the_live_dns_tier() {
    dns_names(Who::User);
}

/// A dnsmasq whose `--version` lacks nftset: the dnsmasq-static tier.
const NO_NFTSET_DNSMASQ: &str = "#!/bin/bash\nif [ \"$1\" = --version ]; then /usr/sbin/dnsmasq --version | sed 's/ nftset/ no-nftset/'; exit; fi\nexec -a \"$0\" /usr/sbin/dnsmasq \"$@\"\n";
/// A dnsmasq that AppArmor keeps out of the state dir (its probe fails with "Permission
/// denied"): the lookup tier.
const CONFINED_DNSMASQ: &str = "#!/bin/bash\ncase \"$*\" in *--test*) echo 'dnsmasq: cannot read probe: Permission denied' >&2; exit 1;; esac\nexec -a \"$0\" /usr/sbin/dnsmasq \"$@\"\n";

/// The static tiers: names resolved at launch (through the test DNS server), the rebind
/// guard over those answers, the tier hints, `resolve`, and the wildcard refusal.
fn static_tiers(who: Who, tier: &str, wrapper: &str) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.file("bin/dnsmasq", wrapper, 0o755);
    let config = format!("dnsmasq_path: {}\ndefault_profiles: [lab]\n", h.dir.join("bin/dnsmasq").display());
    h.file("config/config.yml", &config, 0o600);
    h.profile("lab", "+allowed.shield.test\n+private.shield.test\n");
    let name = format!("tsh-{tier}-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield_with_test_dns(&["run", &name, "--", "-d", &e.image, "sleep", "600"]);
    assert_eq!(out.code, 0, "{who:?} {tier}: {}", out.stderr);
    assert!(out.stderr.contains(&format!("DNS tier {tier}: ")), "{who:?}: no tier hint: {}", out.stderr);
    assert!(out.stderr.contains(&format!("Refused {PRIVATE_V4}: ")), "{who:?}: {}", out.stderr);
    let dir = h.state_dir(&name);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    assert_eq!(read("dns.tier"), format!("{tier}\n"));
    assert_eq!(read("resolved.ips"), format!("{ALLOWED_V4}\n{ALLOWED_V6}\n"), "{who:?} {tier}");
    let audit = read("audit.jsonl");
    assert!(audit.contains(&format!("\"action\":\"dns_rebind\",\"dest\":\"{PRIVATE_V4}\"")), "{audit}");
    h.probe(
        &name,
        &format!("{who:?} {tier}"),
        &[("allowed.shield.test", true), ("unlisted.shield.test", false), ("private.shield.test", false)],
    );
    if tier == "lookup" {
        // watch works without dnsmasq: it says so, and NFLOG and audit events still come.
        let e = env().unwrap_or_else(|| unreachable!());
        let watch = h
            .cmd(&e.bin.join("terok-shield").display().to_string(), &["watch", &name])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(std::time::Duration::from_millis(1500));
        h.podman(&["exec", &name, "sh", "-c", &format!("nc -w 1 {UNLISTED_V4} 80 </dev/null; true")]);
        std::thread::sleep(std::time::Duration::from_millis(1500));
        terminate(&watch, nix::sys::signal::Signal::SIGTERM);
        let done = watch.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let (stdout, stderr) = (String::from_utf8_lossy(&done.stdout), String::from_utf8_lossy(&done.stderr));
        assert!(done.status.success(), "{who:?}: {stderr}");
        assert!(stderr.contains("DNS tier lookup: events carry IP addresses only."), "{stderr}");
        assert!(stdout.contains("\"source\":\"nflog\",\"action\":\"queued_connection\""), "{stdout}");
        assert!(stdout.contains(&format!("\"dest\":\"{UNLISTED_V4}\"")), "{stdout}");
        assert!(out.stderr.contains("AppArmor keeps"), "{who:?}: {}", out.stderr);
        assert!(audit.contains("blocked by AppArmor"), "{audit}");
        assert!(!dir.join("dnsmasq.conf").exists(), "{who:?}: the lookup tier runs no dnsmasq");
        assert!(!read("resolv.conf").contains("127.0.0.1"), "{}", read("resolv.conf"));
    } else {
        // dnsmasq serves and sinkholes on the static tier too.
        assert_eq!(read("resolv.conf"), "nameserver 127.0.0.1\noptions ndots:0\n");
        assert!(!read("dnsmasq.conf").contains("nftset"), "{}", read("dnsmasq.conf"));
        let out = h.shield_with_test_dns(&["deny", &name, "denied.shield.test"]);
        assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
        let lookup = h.podman(&["exec", &name, "nslookup", "denied.shield.test"]);
        assert!(lookup.stdout.contains("NXDOMAIN"), "{who:?}: {}", lookup.stdout);
    }
    // `resolve` re-resolves the default profiles into the bundle's cache.
    let out = h.shield_with_test_dns(&["resolve", &name, "--force"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, format!("Resolved 2 IPs for {name} (forced)\n  {ALLOWED_V4}\n  {ALLOWED_V6}\n").as_str()),
        "{}",
        out.stderr
    );
    // Wildcards need the live tier: refused, and nothing is written.
    let before = bundle_snapshot(&dir);
    let out = h.shield_with_test_dns(&["allow", &name, "*.shield.test"]);
    assert_eq!(out.code, 1, "{who:?}: {}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: '*.shield.test': wildcard entries need live DNS resolution, which the {tier} tier does not do"
        )),
        "{}",
        out.stderr
    );
    assert!(before == bundle_snapshot(&dir), "{who:?}: a refused wildcard changed the bundle");
    h.profile("wild", "+*.shield.test\n");
    let other = format!("{name}-w");
    let out = h.shield_with_test_dns(&["prepare", &other, "--profiles", "wild"]);
    assert_eq!(out.code, 1, "{who:?}: {}", out.stdout);
    assert!(
        out.stderr.starts_with(&format!(
            "Error: wildcard entries need live DNS resolution, which the {tier} tier does not do: *.shield.test."
        )),
        "{}",
        out.stderr
    );
    assert!(!h.state_dir(&other).exists());
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_dnsmasq_static_tier() {
    static_tiers(Who::Root, "dnsmasq-static", NO_NFTSET_DNSMASQ);
}

#[test]
fn rootless_dnsmasq_static_tier() {
    static_tiers(Who::User, "dnsmasq-static", NO_NFTSET_DNSMASQ);
}

#[test]
fn rootless_lookup_tier_when_apparmor_confines_dnsmasq() {
    static_tiers(Who::User, "lookup", CONFINED_DNSMASQ);
}

/// Validate `items` against `schema/<name>.v1.json` (JSON Schema 2020-12).
fn check_schema(name: &str, items: &[serde_json::Value]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../../schema/{name}.v1.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    compiler.add_resource("mem://schema.json", schema).unwrap_or_else(|e| panic!("{e}"));
    let index = compiler.compile("mem://schema.json", &mut schemas).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!items.is_empty(), "{name}: nothing to check");
    for item in items {
        if let Err(e) = schemas.validate(item, index) {
            panic!("{name}: {item} does not match the schema: {e}");
        }
    }
}

/// Signal a command started by [`Home::cmd`]: the program itself, also when `runuser`
/// started it (runuser does not pass signals on).
fn terminate(child: &std::process::Child, sig: nix::sys::signal::Signal) {
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap_or_default();
    let target = children.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(child.id() as i32);
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(target), sig);
}

/// Move this thread into the network namespace of process `pid`.
fn enter_net_of(pid: u32) {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap_or_else(|e| panic!("netns of {pid}: {e}"));
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {pid}: {e}"));
}

/// One DNS query (type A) for the name made of `labels`, sent to the container's dnsmasq
/// (127.0.0.1:53) from inside the network namespace of process `pid`.
fn dns_query_from(pid: &str, labels: &[&[u8]]) {
    let pid: u32 = pid.trim().parse().unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in labels {
        q.push(l.len() as u8);
        q.extend_from_slice(l);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    std::thread::spawn(move || {
        enter_net_of(pid);
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        sock.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap_or_else(|e| panic!("{e}"));
        sock.send_to(&q, "127.0.0.1:53").unwrap_or_else(|e| panic!("{e}"));
        let mut buf = [0u8; 512];
        let _ = sock.recv(&mut buf);
    })
    .join()
    .unwrap_or_else(|_| panic!("query thread"));
}

/// `count` UDP datagrams to `dest:port`, sent from inside the network namespace of process
/// `pid` (a thread of this test enters it), as fast as they go. Each is refused by the
/// container's firewall; send errors are expected and ignored.
fn flood_from(pid: &str, dest: &str, port: u16, count: usize) -> std::time::Duration {
    let pid: u32 = pid.trim().parse().unwrap_or_else(|e| panic!("pid {pid:?}: {e}"));
    let dest: std::net::SocketAddr = format!("{dest}:{port}").parse().unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        enter_net_of(pid);
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").unwrap_or_else(|e| panic!("{e}"));
        let start = std::time::Instant::now();
        for _ in 0..count {
            let _ = sock.send_to(b"x", dest);
        }
        start.elapsed()
    })
    .join()
    .unwrap_or_else(|_| panic!("flood thread"))
}

/// The `blocked` rows of an audit log.
fn blocked_rows(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["action"] == "blocked")
        .collect()
}

/// Wait up to `limit` for `f` to hold.
fn within(limit: std::time::Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The NFLOG reader: a blocked connection is audited once, within a second, with address,
/// port, protocol and the domain its address came from; a flood of 1 000 blocked packets
/// gives one row; a domain carrying control characters is written sanitised; poststop
/// stops the reader.
///
/// Rootless runs with `audit.enabled: false`: the CLI writes no rows, the reader still does.
fn blocked_connections_are_audited(who: Who) {
    let config = (who == Who::User).then_some("audit:\n  enabled: false\n");
    let Some((h, name)) = start_shielded(who, "nflog", &["allowed.shield.test"], &["sleep", "600"], true, config)
    else {
        return;
    };
    let dir = h.state_dir(&name);
    let setup_rows =
        std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default().contains("\"action\":\"setup\"");
    assert_eq!(setup_rows, config.is_none(), "{who:?}: setup rows with audit {config:?}");
    let reader = std::fs::read_to_string(dir.join("reader.pid")).unwrap_or_default();
    let reader_proc = format!("/proc/{}", reader.trim());
    assert!(!reader.trim().is_empty() && std::path::Path::new(&reader_proc).exists(), "{who:?}: no reader");
    // One connection to a name the allowlist lacks: looked up (so dnsmasq logs the answer),
    // then refused.
    let out = h.podman(&[
        "exec",
        &name,
        "sh",
        "-c",
        "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let ok = within(std::time::Duration::from_secs(1), || !blocked_rows(&dir).is_empty());
    let log = std::fs::read_to_string(dir.join("reader.log")).unwrap_or_default();
    assert!(ok, "{who:?}: no blocked row within a second after the refusal; reader.log: {log}");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let rows = blocked_rows(&dir);
    assert_eq!(rows.len(), 1, "{who:?}: {rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r["container"].as_str(), r["dest"].as_str(), r["port"].as_u64(), r["proto"].as_str(), r["domain"].as_str()),
        (Some(name.as_str()), Some(UNLISTED_V4), Some(80), Some("tcp"), Some("unlisted.shield.test")),
        "{who:?}: {r}"
    );
    // A flood: 1 000 packets to one address, one row.
    let pid = h.podman(&["inspect", "--format", "{{.State.Pid}}", &name]).stdout;
    let took = flood_from(&pid, "198.51.100.14", 9, 1000);
    assert!(took < std::time::Duration::from_secs(1), "the flood took {took:?}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let rows = blocked_rows(&dir);
    let flood: Vec<_> = rows.iter().filter(|r| r["dest"] == "198.51.100.14").collect();
    assert_eq!(flood.len(), 1, "{who:?}: {flood:?}");
    assert_eq!((flood[0]["port"].as_u64(), flood[0]["proto"].as_str()), (Some(9), Some("udp")));
    let rules = h.shield(&["rules", &name]).stdout;
    let blocked_rule = rules.lines().find(|l| l.contains("TEROK_SHIELD_BLOCKED")).unwrap_or_default().to_string();
    let packets: u64 = blocked_rule
        .split("packets ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(packets >= 1000, "{who:?}: the firewall refused only {packets} packets: {blocked_rule}");
    // A domain with control characters in the DNS log (as a dnsmasq that does not escape
    // would write it) reaches the audit log sanitised.
    let mut f =
        std::fs::OpenOptions::new().append(true).open(dir.join("dnsmasq.log")).unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    writeln!(f, "Nov 25 00:00:00 dnsmasq[1]: 9 127.0.0.1/1 reply \x1b[31mevil\x07.test is 198.51.100.15")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    flood_from(&pid, "198.51.100.15", 443, 1);
    assert!(within(std::time::Duration::from_secs(2), || blocked_rows(&dir)
        .iter()
        .any(|r| r["dest"] == "198.51.100.15")));
    let raw = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    assert!(raw.contains(r#""domain":" [31mevil .test""#), "{raw}");
    assert!(!raw.contains('\x1b') && !raw.contains("\\u001b"), "{raw}");
    let rows: Vec<serde_json::Value> =
        raw.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    check_schema("audit-row", &rows);
    // poststop stops the reader.
    h.podman(&["rm", "-f", &name]);
    let gone = within(std::time::Duration::from_secs(5), || !std::path::Path::new(&reader_proc).exists());
    assert!(gone, "{who:?}: the reader outlived its container");
}

#[test]
fn rootful_blocked_connections_are_audited() {
    blocked_connections_are_audited(Who::Root);
}

#[test]
fn rootless_blocked_connections_are_audited() {
    blocked_connections_are_audited(Who::User);
}

/// `watch`: events from the three sources, as JSON lines, sanitised, ended by SIGTERM.
fn watch_streams_events(who: Who) {
    let Some((h, name)) = start_shielded(who, "watch", &["allowed.shield.test"], &["sleep", "600"], true, None) else {
        return;
    };
    let e = env().unwrap_or_else(|| unreachable!());
    let mut child = h
        .cmd(&e.bin.join("terok-shield").display().to_string(), &["watch", &name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| unreachable!());
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<String>>()
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    // A query for a name with an escape sequence in it, to the container's dnsmasq.
    let pid = h.podman(&["inspect", "--format", "{{.State.Pid}}", &name]).stdout;
    dns_query_from(&pid, &[b"bad\x1b[31m\x07", b"shield", b"test"]);
    // dnsmasq 2.90 logs that as `<name unprintable>`; another dnsmasq might write it raw.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(h.state_dir(&name).join("dnsmasq.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    use std::io::Write;
    writeln!(f, "Nov 25 00:00:00 dnsmasq[1]: 9 127.0.0.1/1 query[A] raw\x1b[31m\x07.shield.test from 127.0.0.1")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(f);
    assert_eq!(h.shield(&["allow", &name, ALLOWED_V4]).code, 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    terminate(&child, nix::sys::signal::Signal::SIGTERM);
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    let lines = lines.join().unwrap_or_default();
    let text = lines.join("\n");
    assert!(status.success(), "{who:?}: watch ended with {status}: {text}");
    let events: Vec<serde_json::Value> =
        lines.iter().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    let has = |f: &dyn Fn(&serde_json::Value) -> bool| events.iter().any(f);
    assert!(
        has(&|e| e["source"] == "dns" && e["action"] == "blocked_query" && e["domain"] == "unlisted.shield.test"),
        "{who:?}: {text}"
    );
    assert!(
        has(&|e| e["source"] == "nflog"
            && e["action"] == "queued_connection"
            && e["dest"] == UNLISTED_V4
            && e["port"] == 80
            && e["domain"] == "unlisted.shield.test"),
        "{who:?}: {text}"
    );
    assert!(has(&|e| e["source"] == "audit" && e["action"] == "allowed" && e["dest"] == ALLOWED_V4), "{who:?}: {text}");
    assert!(!has(&|e| e["source"] == "dns" && e["domain"] == "allowed.shield.test"), "{who:?}: {text}");
    assert!(
        has(&|e| e["source"] == "dns" && e["domain"].as_str().is_some_and(|d| d.contains("[31m"))),
        "{who:?}: {text}"
    );
    assert!(lines.iter().all(|l| !l.chars().any(|c| c.is_control()) && !l.contains("\\u00")), "{who:?}: {text:?}");
    check_schema("watch-event", &events);
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_watch_streams_events() {
    watch_streams_events(Who::Root);
}

#[test]
fn rootless_watch_streams_events() {
    watch_streams_events(Who::User);
}

/// The container starts, shielded, when its NFLOG reader cannot: the bridge hook is soft.
fn starts_without_a_reader(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", &format!("+{ALLOWED_V4}\n"));
    let name = format!("tsh-noreader-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield(&["prepare", &name, "--profiles", "lab", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    // reader.log as a directory: the hook cannot open the reader's log, so it cannot start it.
    h.sh(&format!("mkdir {}", h.state_dir(&name).join("reader.log").display()));
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = h.podman(&args);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    h.probe(&name, &format!("{who:?} without a reader"), &[(ALLOWED_V4, true), (UNLISTED_V4, false)]);
    assert!(!h.state_dir(&name).join("reader.pid").exists());
    let log = std::fs::read_to_string(h.state_dir(&name).join("hook-error.log")).unwrap_or_default();
    assert!(log.contains("terok-shield bridge hook: cannot start the reader"), "{who:?}: {log}");
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_container_starts_when_the_reader_cannot() {
    starts_without_a_reader(Who::Root);
}

#[test]
fn rootless_container_starts_when_the_reader_cannot() {
    starts_without_a_reader(Who::User);
}

/// `simple-clearance` on a pseudo-terminal: a blocked destination is asked about, a wrong
/// answer is explained, `a` allows it (and the container then reaches it).
fn simple_clearance(who: Who) {
    let Some((h, name)) = start_shielded(who, "clear", &["allowed.shield.test"], &["sleep", "600"], true, None) else {
        return;
    };
    let e = env().unwrap_or_else(|| unreachable!());
    let pty = nix::pty::openpty(None, None).unwrap_or_else(|e| panic!("{e}"));
    let slave = || std::process::Stdio::from(pty.slave.try_clone().unwrap_or_else(|e| panic!("{e}")));
    let mut child = h
        .cmd(&e.bin.join("terok-shield").display().to_string(), &["simple-clearance", &name])
        .stdin(slave())
        .stdout(slave())
        .stderr(slave())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut term = std::fs::File::from(pty.master);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let mut term = term.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let seen = seen.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = term.read(&mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock().unwrap_or_else(|p| p.into_inner()).push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str| {
        let ok = within(std::time::Duration::from_secs(10), || {
            seen.lock().unwrap_or_else(|p| p.into_inner()).contains(what)
        });
        assert!(ok, "no {what:?} on the terminal: {}", seen.lock().unwrap_or_else(|p| p.into_inner()));
    };
    wait_for("Watching for blocked connections... (Ctrl-C to stop)");
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    wait_for(&format!("[BLOCKED] {UNLISTED_V4} (unlisted.shield.test) :80 — allow/deny? "));
    use std::io::Write;
    term.write_all(b"maybe\n").unwrap_or_else(|e| panic!("{e}"));
    wait_for("  Unknown input. Type 'a' to allow or 'd' to deny.");
    term.write_all(b"a\n").unwrap_or_else(|e| panic!("{e}"));
    wait_for(&format!("  ✓ allowed {UNLISTED_V4} (unlisted.shield.test)"));
    h.probe(&name, "after the verdict", &[(UNLISTED_V4, true)]);
    terminate(&child, nix::sys::signal::Signal::SIGINT);
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "{status}");
    drop(term);
    drop(pty.slave);
    let _ = reader;
    h.podman(&["rm", "-f", &name]);
}

#[test]
fn rootful_simple_clearance_on_a_terminal() {
    simple_clearance(Who::Root);
}

#[test]
fn rootless_simple_clearance_on_a_terminal() {
    simple_clearance(Who::User);
}

/// A stand-in clearance hub at `$XDG_RUNTIME_DIR/terok/events/<id12>/ingester.sock` of
/// `who`: collects every line it is sent.
struct Hub {
    dir: PathBuf,
    lines: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Hub {
    fn listen(who: Who, id: &str) -> Hub {
        let e = env().unwrap_or_else(|| unreachable!());
        let uid: u32 = match who {
            Who::Root => 0,
            Who::User => run(Command::new("id").args(["-u", &e.user])).stdout.trim().parse().unwrap_or(0),
        };
        let dir = PathBuf::from(format!("/run/user/{uid}/terok/events/{}", &id[..12]));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let sock = dir.join("ingester.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        for p in [dir.parent().and_then(|p| p.parent()).unwrap_or(&dir), dir.parent().unwrap_or(&dir), &dir, &sock] {
            let _ = nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(uid)), None);
        }
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(conn).lines().map_while(Result::ok) {
                        let v = serde_json::from_str(&line).unwrap_or_else(|e| panic!("hub got {line:?}: {e}"));
                        sink.lock().unwrap_or_else(|p| p.into_inner()).push(v);
                    }
                });
            }
        });
        Hub { dir, lines }
    }

    fn wait_for(&self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let mut found = None;
        within(std::time::Duration::from_secs(5), || {
            found = self.lines.lock().unwrap_or_else(|p| p.into_inner()).iter().find(|v| f(v)).cloned();
            found.is_some()
        });
        found.unwrap_or_else(|| {
            panic!("the hub got no {what}: {:?}", self.lines.lock().unwrap_or_else(|p| p.into_inner()))
        })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Hub events: `pending` for a blocked destination (with the container's dossier), the
/// posture events of `up`/`down`, and `container_exited` when the container goes.
fn hub_events(who: Who) {
    let Some(e) = env() else { return };
    ensure_setup(who);
    let h = Home::new(who);
    h.profile("lab", "+allowed.shield.test\n");
    let name = format!("tsh-hub-{}-{who:?}", std::process::id()).to_lowercase();
    let out = h.shield_with_test_dns(&["prepare", &name, "--profiles", "lab", "--json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut args: Vec<&str> = vec!["run", "-d", "--annotation", "dossier.task=t-42"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = run(&mut with_test_dns(&h.cmd("podman", &args)));
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let id = h.podman(&["inspect", "--format", "{{.Id}}", &name]).stdout.trim().to_string();
    let hub = Hub::listen(who, &id);
    let script = "nslookup unlisted.shield.test >/dev/null; nc -w 2 unlisted.shield.test 80 </dev/null; true";
    assert_eq!(h.podman(&["exec", &name, "sh", "-c", script]).code, 0);
    let p = hub.wait_for("pending", |v| v["type"] == "pending");
    assert_eq!(
        (&p["container"], &p["id"], &p["dest"], &p["port"], &p["proto"], &p["domain"], &p["dossier"]),
        (
            &serde_json::json!(name),
            &serde_json::json!(format!("{name}:1")),
            &serde_json::json!(UNLISTED_V4),
            &serde_json::json!(80),
            &serde_json::json!(6),
            &serde_json::json!("unlisted.shield.test"),
            &serde_json::json!({"task": "t-42"})
        ),
        "{who:?}: {p}"
    );
    assert!(p["ts"].as_str().is_some_and(|t| t.len() == "2026-01-01T00:00:00.000000+00:00".len()), "{p}");
    for (args, kind) in [
        (vec!["down", name.as_str(), "--container-id", id.as_str()], "shield_down"),
        (vec!["down", name.as_str(), "--container-id", id.as_str(), "--disengage"], "shield_disengaged"),
        (vec!["up", name.as_str(), "--container-id", id.as_str()], "shield_up"),
    ] {
        assert_eq!(h.shield(&args).code, 0);
        let v = hub.wait_for(kind, |v| v["type"] == kind);
        assert_eq!(v["container"], serde_json::json!(name), "{v}");
    }
    let out = h.podman(&["rm", "-f", &name]);
    assert_eq!(out.code, 0, "{who:?}: {}", out.stderr);
    let v = hub.wait_for("container_exited", |v| v["type"] == "container_exited");
    assert_eq!(v["reason"], "poststop", "{v}");
}

#[test]
fn rootful_hub_events() {
    hub_events(Who::Root);
}

#[test]
fn rootless_hub_events() {
    hub_events(Who::User);
}

/// The getent tier: no dnsmasq and no dig/drill on PATH. Names the nameserver does not know
/// (here: one only in /etc/hosts) are resolved with getent, and their addresses reach the
/// allow set.
#[test]
fn rootful_getent_tier_without_dnsmasq_or_dig() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", "+hostsonly.shield.test\n+allowed.shield.test\n");
    h.sh("mkdir -p tools && for t in podman nft nsenter getent; do ln -s \"$(command -v $t)\" tools/$t; done");
    h.file("hosts", &format!("127.0.0.1 localhost\n{UNLISTED_V4} hostsonly.shield.test\n"), 0o644);
    let name = format!("tsh-getent-{}", std::process::id());
    let path = format!("PATH={}", h.dir.join("tools").display());
    let shield = e.bin.join("terok-shield").display().to_string();
    let cmd = h.cmd("env", &[&path, &shield, "prepare", &name, "--profiles", "lab", "--json"]);
    let out = run(&mut with_test_files(&cmd, None, Some(&h.dir.join("hosts"))));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("DNS tier getent: "), "{}", out.stderr);
    let resolved = std::fs::read_to_string(h.state_dir(&name).join("resolved.ips")).unwrap_or_default();
    for want in [UNLISTED_V4, ALLOWED_V4] {
        assert!(resolved.lines().any(|l| l == want), "{want} not in resolved.ips: {resolved}");
    }
    let flags: Vec<String> = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut args: Vec<&str> = vec!["run", "-d"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([e.image.as_str(), "sleep", "600"]);
    let out = h.podman(&args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    h.probe(&name, "getent tier", &[(UNLISTED_V4, true), (ALLOWED_V4, true), (DENIED_V4, false)]);
    h.podman(&["rm", "-f", &name]);
}

/// Rootful, with the host's nameserver on IPv6 only: prepare records it as the upstream, the
/// firewall lets the container's dnsmasq reach it, and names resolve.
#[test]
fn rootful_ipv6_upstream() {
    let Some(e) = env() else { return };
    ensure_setup(Who::Root);
    let h = Home::new(Who::Root);
    h.profile("lab", "+allowed.shield.test\n");
    h.file("resolv.conf", "nameserver 2001:db8:100::53\n", 0o644);
    let name = format!("tsh-v6dns-{}", std::process::id());
    let shield = e.bin.join("terok-shield").display().to_string();
    let cmd = h.cmd(&shield, &["run", &name, "--profiles", "lab", "--", "-d", &e.image, "sleep", "600"]);
    let out = run(&mut with_test_files(&cmd, Some(&h.dir.join("resolv.conf")), None));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let upstream = std::fs::read_to_string(h.state_dir(&name).join("upstream.dns")).unwrap_or_default();
    assert_eq!(upstream, "2001:db8:100::53\n");
    h.probe(&name, "IPv6 upstream", &[("allowed.shield.test", true), ("unlisted.shield.test", false)]);
    h.podman(&["rm", "-f", &name]);
}
